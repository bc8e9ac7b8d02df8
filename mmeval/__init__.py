"""mmeval: evaluate vision-language checkpoints for quality, speed and fairness."""

__version__ = "0.1.0"
