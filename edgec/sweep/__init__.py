"""edgec sweep: trials of recipes over a search space on Ray, and their Pareto front."""
