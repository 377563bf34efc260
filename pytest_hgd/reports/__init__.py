"""Reports: the report data, its terminal and Markdown renderings, the HTML report."""
