"""The scale-out deployment (CeleryExecutor), defined once.

``deploy.services`` holds every Airflow service's command and the settings they share;
``deploy.compose`` renders ``docker-compose.yml`` from it, and ``deploy.native`` starts the same
commands as local processes (``tests/e2e/test_celery_scaleout.py``).
"""
