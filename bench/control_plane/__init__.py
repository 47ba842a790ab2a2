"""Load on submit and status served as in production, beside a bare hello-world."""
