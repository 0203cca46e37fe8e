"""Running payloads and captured traffic through the local endpoint, in batches, and reading
the outputs back for comparison."""
