"""Experiment configs (experiment/, hparams_search/, launcher/) and the script that renders
their results (``python -m experiments.results``)."""
