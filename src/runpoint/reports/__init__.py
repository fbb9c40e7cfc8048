"""What a person looks at: matplotlib plots of runs and the one-page HTML report."""
