"""The seed's Python API — VideoGenerator, FeedbackIntegration, FeedbackCollector and
ModelImprover — composed over the apps' services. This package is the one place that wires
all apps together; import it through ``feedbackloop.seed``, which sets Django up first.
"""
