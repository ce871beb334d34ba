"""Incident notices: the catalogue of services a company runs, the notice types its monitoring
staff send (障害発生, 障害復旧…) with their forms, templates and targeting, and each notice's
way from a filled form to the members whose services are affected, on the urgent lane."""
