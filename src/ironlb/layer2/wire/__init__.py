"""Layer 2 wire formats (sans-I/O codecs): Ethernet framing, ARP, NDP; bytes in, typed values out and back."""
