"""Wiring: the voice stages chosen from settings and the knowledge service behind the pipeline's Retriever."""
