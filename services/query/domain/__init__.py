"""The query side's pure rules: anomaly, budget basis, waste, charges, FOCUS rows, labels. No I/O."""
