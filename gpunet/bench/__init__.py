"""gpunet's benchmark harness: the code behind ``gpunet bench``."""
