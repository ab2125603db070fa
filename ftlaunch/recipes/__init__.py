"""The compute side: the training recipe and what it needs on the node. Imports only ftlaunch.contract of ftlaunch."""
