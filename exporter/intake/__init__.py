"""Which jobs are watched and from where: config and reload, registration API, watch dir."""
