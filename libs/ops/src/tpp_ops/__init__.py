"""The platform's operations: its ACL layout, its AsyncAPI documents and the operators' CLI,
built from what each service declares (``tpp_<service>.messaging``)."""
