#!/usr/bin/env bash
# Compile the pure-Java core and run its JUnit 4 tests on the JVM (JDK 17 + Debian's junit4),
# as CI does; no Android SDK or Gradle needed. Installs junit4 with apt when it is missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
JUNIT=/usr/share/java/junit4.jar
HAMCREST=/usr/share/java/hamcrest-core.jar
command -v javac >/dev/null || { echo "javac not found: install a JDK 17 (apt-get install openjdk-17-jdk-headless)" >&2; exit 1; }
if [ ! -f "$JUNIT" ] || [ ! -f "$HAMCREST" ]; then
  echo "== installing junit4 from the Debian packages"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get install -y -q junit4 >/dev/null 2>&1 || { $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q junit4 >/dev/null; }
fi
BUILD=$(mktemp -d)
trap 'rm -rf "$BUILD"' EXIT
javac -Xlint:all -Werror --release 17 -d "$BUILD/main" $(find src/main/java -name '*.java')
javac --release 17 -cp "$BUILD/main:$JUNIT" -d "$BUILD/test" $(find src/test/java -name '*.java')
cp -r src/test/resources/. "$BUILD/test/"
TESTS=$(cd src/test/java && find . -name '*Test.java' | sed 's|^\./||; s|\.java$||; s|/|.|g' | sort)
echo "test classes: $(echo $TESTS)"
java -cp "$BUILD/main:$BUILD/test:$JUNIT:$HAMCREST" org.junit.runner.JUnitCore $TESTS
# The app module needs the Android SDK to compile; here its Java sources are at least parsed.
javac -XDshould-stop.ifError=PARSE -XDshould-stop.ifNoError=PARSE -d "$BUILD/parse" \
  $(find ../app/src/main/java -name '*.java') && echo "app sources: parsed OK (compiled only with the Android SDK)"
