"""Web dashboard for the STCNN engine: pages, REST API and background runs. Calls segmentation/, never the reverse."""
