"""Code that runs inside Label Studio (Django), the same on the deployed ECS task, in the tests and in the demo.

- ``settings``: Label Studio's own settings plus this app, its middleware and its URLs
  (``DJANGO_SETTINGS_MODULE=labeling_gate.settings``).
- ``routes``: the rule table, one entry for every route Label Studio serves; ``decision``: what a caller may do
  on one route; ``middleware``: who is asking, and the table applied where Django has resolved the route;
  ``redaction``: what a worker reads of other people's answers.
- ``review`` (the contract, pure) and ``review_gate``: reviewers and review projects; a worker who is not a
  reviewer is kept out of review projects, a reviewer out of the review of their own images.
- ``views`` and ``urls``: worker accounts for the pipeline's CLI, and the page where a worker chooses a password.
- ``credentials`` and ``start``: every start applies the secrets' current values, then runs uwsgi.
- ``inventory``: every route and method that the installed Label Studio serves, from Django's URL resolver.

Imports Django and Label Studio: it runs in Label Studio's Python only (``.venv-label-studio`` here).
"""
