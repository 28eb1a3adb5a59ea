"""What is not Python: C sources rendered from templates (csource), native runtimes run in a child process so that
a crash is a message (isolate), the stderr that native code writes directly (stderr), and TensorFlow's import with
its C++ chatter captured (tensorflow). Imports nothing of tinyedge but errors."""
