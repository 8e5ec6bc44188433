"""The Kubernetes API as ofobserve's long-running parts use it (the controller, the scaler's
pod discovery): a JSON client (:mod:`~ofobserve.kube.client`) and a list-then-watch informer
(:mod:`~ofobserve.kube.informer`). Does I/O."""
