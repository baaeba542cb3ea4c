"""The Apache Spark engine: the same parsed specs compiled to PySpark (docs/spark.md).

``pyspark`` is an optional dependency (extra ``spark``) and needs Java 17 or later; nothing here
imports it at module import time except the engine modules themselves.
"""
