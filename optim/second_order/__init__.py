"""Second-order methods; filled by the second-order work. OPTIMIZERS extends optim.create."""
OPTIMIZERS = {}
