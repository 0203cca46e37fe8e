"""The diagnosis layer: findings and their codes, and the rules that turn a trace of the request
path into one root cause with a fix."""
