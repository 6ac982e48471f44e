"""Data in: input adapters, image decoding, streaming of files, text data, bundled data sets."""
