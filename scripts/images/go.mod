// The two tiny programs of the lab's images (scripts/build-images.py): the pod sandbox's pause process and the
// backend pods' HTTP server. Standard library only, built static (CGO_ENABLED=0).
module ironlb.local/lab-images

go 1.22
