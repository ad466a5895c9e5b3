"""The napari plugin (``pip install "semdenoise[napari]"``): one dock widget that trains,
loads, saves and applies models to layers, and a synthetic sample to try it on.

napari finds it through the ``napari.manifest`` entry point and ``napari.yaml`` here.
:mod:`.layers` is the work, without Qt; :mod:`.widget` the Qt front end over it.
"""
