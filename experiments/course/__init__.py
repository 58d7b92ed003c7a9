"""The course's experiments, each a module with `run(out_dir, quick) -> {claim: Claim}`
that writes its plot(s) as out_dir/<name>*.png; `python -m experiments.course`
runs them all (experiments/course/__main__.py)."""

EXPERIMENTS = (
    'trajectories', 'init_stats', 'lr_curves', 'batch_scaling', 'minibatch_noise',
    'robbins_monro', 'lbfgs_minibatch', 'warmup', 'random_vs_grid', 'optimizer_practice',
    'capacity', 'linear_collapse', 'shift_equivariance', 'backprop', 'swin_ablation',
    'regularization', 'transfer',
)
