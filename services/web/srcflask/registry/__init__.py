"""The language-model registry: model versions, aliases, the catalog and evaluations.

`service` owns every rule and is the only module here that commits.
"""
