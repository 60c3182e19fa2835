"""Presenting results: the typed table, the decision, the plots and the HTML report."""
