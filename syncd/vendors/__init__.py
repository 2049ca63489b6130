"""Vendor HTTP clients: one sub-package per vendor, sharing the machinery in `syncd.vendors.http`.

Clients know nothing of the database, the jobs or the business rules; they speak HTTP, translate
every failure into `syncd.errors`, and return typed models.
"""
