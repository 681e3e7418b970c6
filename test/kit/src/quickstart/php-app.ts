import { chmod, chown, mkdir, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";

/**
 * The quickstart's app `hello`: its code and its web server config live in its data directory
 * (data/hello on each host, mounted at /srv/app), not in the image. The image is plain Debian with
 * nginx and php-fpm: the runtime that every app shares and that a rollout patches.
 */
export const HELLO_PORT = 8080;
export const HELLO_DATA_MOUNT = "/srv/app";

const START = `#!/bin/sh
# PID 1 of the container: php-fpm and nginx as children, SIGTERM stops both cleanly.
set -e
mkdir -p /run/php /var/lib/nginx /var/log/nginx
fpm=$(ls /usr/sbin/php-fpm* | head -n 1)
"$fpm" --nodaemonize --fpm-config /srv/app/php-fpm.conf &
fpm_pid=$!
nginx -c /srv/app/nginx.conf -g 'daemon off;' &
nginx_pid=$!
trap 'kill -TERM $nginx_pid $fpm_pid 2>/dev/null; wait; exit 0' TERM INT
echo "hello: nginx and $fpm started"
wait $nginx_pid
echo "hello: nginx ended" >&2
kill -TERM $fpm_pid 2>/dev/null
exit 1
`;

const NGINX = `user www-data;
worker_processes 1;
pid /run/nginx.pid;
error_log stderr warn;
events { worker_connections 64; }
http {
  include /etc/nginx/mime.types;
  access_log off;
  server {
    listen ${HELLO_PORT};
    root /srv/app/public;
    index index.php;
    location ~ \\.php$ {
      fastcgi_pass unix:/run/php/hello.sock;
      include /etc/nginx/fastcgi_params;
      fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
    }
  }
}
`;

const FPM = `[global]
error_log = /proc/self/fd/2
daemonize = no

[hello]
user = www-data
group = www-data
listen = /run/php/hello.sock
listen.owner = www-data
listen.group = www-data
listen.mode = 0660
pm = static
pm.max_children = 2
; The container's environment (GILD_IMAGE, GILD_GENERATION) reaches the page.
clear_env = no
catch_workers_output = yes
`;

const INDEX = `<?php
// The app's code lives in data/hello on the host: it survives every image switch and rollback.
$counter = '/srv/app/visits.txt';
$fp = fopen($counter, 'c+');
flock($fp, LOCK_EX);
$visits = (int) stream_get_contents($fp) + 1;
ftruncate($fp, 0); rewind($fp); fwrite($fp, (string) $visits); fflush($fp);
flock($fp, LOCK_UN); fclose($fp);
header('Content-Type: text/plain');
printf("Hello from gild!\\n");
printf("image:      %s (generation %s)\\n", getenv('GILD_IMAGE') ?: '?', getenv('GILD_GENERATION') ?: '?');
printf("php:        %s\\n", PHP_VERSION);
printf("mbstring:   %s\\n", extension_loaded('mbstring') ? 'yes' : 'no');
printf("visits:     %d (kept in the app's data dir)\\n", $visits);
`;

const HEALTHZ = `<?php
// nginx answered and PHP ran: the app is healthy.
header('Content-Type: text/plain');
echo "ok\\n";
`;

/** Write the app's files into a host's data/hello directory (the data survives; the config is ours). */
export async function writeHelloApp(dataDir: string): Promise<void> {
  await mkdir(join(dataDir, "public"), { recursive: true });
  await writeFile(join(dataDir, "start.sh"), START);
  await chmod(join(dataDir, "start.sh"), 0o755);
  await writeFile(join(dataDir, "nginx.conf"), NGINX);
  await writeFile(join(dataDir, "php-fpm.conf"), FPM);
  await writeFile(join(dataDir, "public", "index.php"), INDEX);
  await writeFile(join(dataDir, "public", "healthz.php"), HEALTHZ);
  // The counter is the app's own data: created once, never overwritten, writable by php-fpm (www-data).
  const visits = join(dataDir, "visits.txt");
  if (!(await stat(visits).catch(() => undefined))) {
    await writeFile(visits, "0");
    await chown(visits, WWW_DATA_UID, WWW_DATA_UID);
  }
}

/** www-data's uid and gid in Debian. */
const WWW_DATA_UID = 33;
