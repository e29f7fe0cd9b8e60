"""Reports: DataFrames and plots built from cost-model results."""
