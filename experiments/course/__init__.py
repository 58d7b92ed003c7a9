"""The course's experiments, each a command that writes a plot (and numbers
that tests assert): trajectories, lr_curves, init_stats, batch_scaling."""
