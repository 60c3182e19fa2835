"""Presenting results: the typed table and decision, the plots, the HTML report and the terminal summary (it computes nothing new)."""
