/* Keeps the plugin target non-empty until the filter lands. */
typedef int h5zstd_plugin_nonempty;
