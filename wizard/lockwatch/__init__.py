"""The lock-hang watch beside a running step, what it tells the operator, and its remedies."""
