"""SplitMix64 (Steele, Lea and Flood, 2014): the constants of gpunet's counter-based random numbers.

Counter c of key k gives bits = mix(k + c * GAMMA) modulo 2^64, where mix(z)
is z ^= z >> 30; z *= MIX1; z ^= z >> 27; z *= MIX2; z ^= z >> 31. The NumPy
backend computes it on arrays (``base.py``), the dropout kernels in CUDA
(``kernels.py``), both from these numbers.
"""
GAMMA = 0x9E3779B97F4A7C15
MIX1 = 0xBF58476D1CE4E5B9
MIX2 = 0x94D049BB133111EB
