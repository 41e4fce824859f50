"""Files shipped inside YARN containers to start a kernel (see yardlab_kernel.py)."""
