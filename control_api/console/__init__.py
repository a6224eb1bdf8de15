"""The supervisors' web console: static HTML, CSS and JavaScript served by the API itself (no CDN, no build)."""
