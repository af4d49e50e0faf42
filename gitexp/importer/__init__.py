"""Importing runs from MLflow: reading its file store and sqlite database, writing gitexp runs.

stores and database read MLflow's two on-disk formats without MLflow installed; convert writes what
they read as gitexp runs. It may import everything below it, including gitexp.mlflow (whose naming
rules imported runs follow); only the CLI imports it.
"""
