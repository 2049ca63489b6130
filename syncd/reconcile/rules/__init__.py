"""Pure reconcile rules: data and `now` in, findings out."""
