import sys

from ironlb.cli import main

sys.exit(main())
