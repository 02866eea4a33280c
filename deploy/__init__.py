"""Deployment recipes: the load balancer in front of several app replicas (scripts/replicas.sh)."""
