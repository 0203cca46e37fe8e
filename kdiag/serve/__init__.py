"""`kdiag serve`: a local endpoint that speaks the container contract and the Runtime API."""
