"""The request path, stage by stage (wire, container, tfserving, runtime)."""
