"""marshmallow schemas: what the API accepts and answers, and the source of its OpenAPI document."""
