"""Gaussian mixtures on sklearn's bundled tabular data (iris, wine), the foundation application
(`latentvar mixture fit`): fit.py fits by exact EM, compares with sklearn and writes the report. The model
family is `latentvar.mixture`; the data loader is `latentvar.data.tabular`.
"""
