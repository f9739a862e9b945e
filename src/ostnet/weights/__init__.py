"""Pretrained weights: the catalogue and cache (``catalog``), the safe pickle reader (``unpickle``) and the
installer behind ``ostnet weights install`` (``install``)."""
