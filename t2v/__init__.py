"""t2v: text-to-video on Knative.

The shared package used by the submit, status and infer functions.
"""

__version__ = "0.1.0"
