"""Evaluation: the held-out protocol, the simulator oracle, planning diagnosis and the statistics every report uses."""
