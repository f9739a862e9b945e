"""``ostnet web``: a Gradio app for animating portraits (install the ``ostnet[web]`` extra).

* ``ostnet.web.app``: ``WebApp``, the Blocks (tabs: animate, live webcam, pose & expression, edit);
* ``ostnet.web.jobs``: models, limits, input checks, the job (``animate_video``) and session files, no Gradio;
* ``ostnet.web.options``: the ``ostnet animate`` options as page controls, and back to ``AnimateOptions``;
* ``ostnet.web.guard``: Host/Origin checks and request-body limits (ASGI middleware);
* ``ostnet.web.server``: ``serve(models, limits, host, port, ...)``.

Example::

    from ostnet.web.jobs import WebLimits, load_models
    from ostnet.web.server import serve
    served = serve(load_models([Path("ostnet-vox-256.safetensors")], None, 1), WebLimits(), block=False)
    print(served.url)
    served.close()
"""
