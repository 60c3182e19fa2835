"""Presenting results: the table as CSV and Markdown, the plots, the HTML report and the terminal summary (it computes nothing new)."""
