"""grid: an HPC task grid on Amazon SQS and EC2 Auto Scaling, or on one machine."""

__version__ = "0.1.0"
