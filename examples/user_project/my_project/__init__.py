"""A user project extending ssnets: its own model (models.py) and dataset loader (data.py).

conf/ beside this package names them in ssnets' config groups (model=tiny_unet,
data=discs, experiment=discs); see "Extending ssnets from your own project" in
ssnets' README.
"""
