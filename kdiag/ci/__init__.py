"""`kdiag check`: the pre-deploy gate, its configuration and its JUnit report."""
