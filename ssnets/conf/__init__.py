"""ssnets' Hydra configs, shipped in the package (`pkg://ssnets.conf`): one folder per config group."""
