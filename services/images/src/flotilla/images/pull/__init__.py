"""Pull: an image from a registry into one node's content store, unpacked as it arrives."""
